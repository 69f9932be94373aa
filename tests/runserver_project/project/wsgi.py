import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def add_header(app):
    """WSGI middleware: runserver must keep it in place."""

    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, headers + [("X-WSGI-Middleware", "yes")], exc_info)

        return app(environ, start)

    return wrapped


application = add_header(get_wsgi_application())
