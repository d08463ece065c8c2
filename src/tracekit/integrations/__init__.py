"""One module per integration, each the same shape: ``patches``, ``patch(module)``, ``unpatch(module)``.

The table that lists them, with their trigger modules and minimum versions, is
``tracekit._registry.INTEGRATIONS``. These modules never import the library they patch
at import time; they are imported when the library itself is.

``asgi`` and ``wsgi`` are not in the table: they hold the ASGI and WSGI middleware
(``TracekitMiddleware``) that the HTTP server integrations build on.
"""
