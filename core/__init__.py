"""facecam inference: network definitions, templates and face generation. Never imports train/ or bpy."""

__version__ = "0.9.0"
