"""facecam's Blender add-on (sidebar controls, scene writing, shape-key sweeps, Cycles preview).

Not built yet: it arrives with the add-on issue. It will hold no model math; everything goes through core.FaceModel.
"""
