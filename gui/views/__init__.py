"""The console's views: widgets that show models and ask for work; they never do the work.

A view reads records from its model, turns the user's gestures into requests (signals or calls
on the main window's actions) and repaints when the model changes.
"""
