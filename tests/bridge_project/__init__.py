"""A small Django project served side by side by the bridge and by gunicorn.

``tests/test_bridge_semantics.py`` and ``tests/test_bridge_corpus.py`` run it
under gunicorn's aiohttp worker (``wsgi:app``, Django through aiodjango's WSGI
bridge) and under gunicorn's own sync and gthread workers (``wsgi:application``,
the reference), and compare what comes out on the wire.
"""
