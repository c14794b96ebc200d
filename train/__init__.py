"""facecam training: data sets, losses, loops and evaluation. Imports core/ for the network definitions."""
