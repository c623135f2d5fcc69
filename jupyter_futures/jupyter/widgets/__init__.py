"""Live ipywidgets for futures, actors, progress and the cluster dashboard.

Importing this package needs ipywidgets; ``import jupyter_futures`` does not import it.
"""
