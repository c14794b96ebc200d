"""Data sets the models train on: ICT-FaceKit access, synthetic FaceScape-like and BP4D-like sets,
procedural UV textures, and loaders for the real FaceScape and BP4D layouts."""
