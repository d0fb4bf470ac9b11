"""What every page of the New Replication Job wizard shares: its field errors and `check`.

A page's `check()` builds the core objects of its step and raises `InvalidSettingError` with
the job-file key path of the offending field; `validatePage` (Next and Finish) shows the reason
beside that field and stays on the page. `fill(job)` puts a stored job's values back into the
widgets (Edit job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLabel, QWizardPage

from core.errors import InvalidSettingError
from core.model.job import ReplicationJob
from gui.wizard.fields import ERROR_STYLE, FieldErrors

if TYPE_CHECKING:
    from gui.wizard.wizard import JobWizard


class WizardPage(QWizardPage):
    step = ""  # the step's name in the side list

    def __init__(self, wizard: JobWizard) -> None:
        super().__init__()
        self.job_wizard = wizard
        self.errors = FieldErrors()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.hide()

    def say(self, text: str, error: bool = True) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setVisible(bool(text))

    def check(self) -> None:
        """Build this step's core objects; raise InvalidSettingError naming the field."""

    def fill(self, job: ReplicationJob) -> None:
        """Show a stored job's values (Edit job)."""

    def show_error(self, error: InvalidSettingError) -> QLabel | None:
        return self.errors.show(error)

    def validatePage(self) -> bool:
        self.errors.clear()
        try:
            self.check()
        except InvalidSettingError as e:
            if self.show_error(e) is None:
                # A path no field of this page claims: say it at the bottom of the page.
                self.job_wizard.say(str(e))
            return False
        self.job_wizard.say("")
        return True
