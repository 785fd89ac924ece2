"""mmengine configs of every stage, shipped as package data (``mixbench.base.config.CONFIG_ROOT``).

Files here are read by ``mmengine.Config.fromfile``, never imported as modules.
"""
