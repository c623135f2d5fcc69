"""The Jupyter layer: magics, output routing, tracebacks, the JupyterLab comm and widgets.

It talks to engines only through the public API and the backend protocol
(``jupyter_futures.backend``), never to an engine's internals.
"""
