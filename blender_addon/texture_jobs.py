"""Textures arrive after the mesh: an operator queues the face's texture and returns, so Blender draws the new mesh
at once; a timer then synthesises the texture and puts it into the face's image. Repeated requests for one face
(a user dragging the intensity) collapse to the latest."""
from __future__ import annotations

import bpy

from . import model_session
from .scene_mesh import set_texture

_pending: dict[str, dict] = {}  # object name -> generation settings


def request(obj, settings: dict) -> None:
    _pending[obj.name] = settings
    if bpy.app.background:  # no event loop runs timers: finish now
        run_pending()
    elif not bpy.app.timers.is_registered(_on_timer):
        bpy.app.timers.register(_on_timer, first_interval=0.05)


def pending() -> list[str]:
    return list(_pending)


def run_pending() -> int:
    """Synthesise and apply every queued texture; returns how many were applied."""
    model = model_session.current()
    done = 0
    while _pending:
        name, s = _pending.popitem()
        obj = bpy.data.objects.get(name)
        if obj is None or model is None:
            continue
        texture = model.texture_image(s["identity_seed"], s["expression"], s["intensity"], s["noise_seed"])
        if texture is not None:
            set_texture(obj, texture)
            done += 1
    return done


def _on_timer():
    try:
        run_pending()
    except Exception as e:  # a timer has no operator to report through
        print(f"facecam: texture synthesis failed: {e}")
    return None  # run once
