"""The ``mixbench`` sub-commands, one module per stage; each ``register(sub)`` adds its parsers.

Parsers are built without importing torch, mmengine or mmdet; each command imports what it needs when it runs.
"""
