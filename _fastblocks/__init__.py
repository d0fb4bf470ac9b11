"""ReplicaDesk's compiled hot path: block digests, zero detection, digest diffs, LZ4 frames.

Private to the project: only `core.blocks` imports it, and the rest of the engine goes through that
facade. One concern per extension module, each with a `.pyi` stub beside it:

- `_fastblocks.digest`: XXH3-128 digests per block, zero-block detection, digest diffs;
- `_fastblocks.lz4block`: LZ4 block compression into self-describing frames.

Every function releases the GIL around its C work and spreads a batch over the cores with OpenMP.
Nothing here imports core.
"""
