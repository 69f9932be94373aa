from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version():
    for line in (HERE / "aiodjango" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError("__version__ not found in aiodjango/__init__.py")


setup(
    name="aiodjango",
    version=read_version(),
    description="Serve aiohttp handlers (async views, websockets) next to Django views, from one server.",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    packages=find_packages(include=["aiodjango", "aiodjango.*"]),
    package_data={"aiodjango": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "Django>=4.2",
        # 3.11: the oldest whose whole test suite passes (CHANGELOG.rst says why).
        "aiohttp>=3.11,<4",
    ],
    extras_require={
        "gunicorn": ["gunicorn>=21"],
        "uvloop": ["uvloop"],
        "test": [
            "pytest>=8",
            "pytest-aiohttp>=1.1",
            "pytest-asyncio>=0.23",
            "pytest-django>=4.8",
            "hypothesis>=6",
            "gunicorn>=21",
            # The example project's tests: Redis scale-out, uvloop worker,
            # and the chat in Debian's Chromium driven by playwright.
            "redis>=5.0.1",
            "uvloop>=0.17",
            "playwright>=1.40",
            # The compatibility suite (tests/compat): real packages behind a
            # real aiodjango server. Ranges that hold across Django 4.2-6.x;
            # pip picks the newest release each Django allows.
            "djangorestframework>=3.15,<4",
            "whitenoise[brotli]>=6.5,<7",
            "django-debug-toolbar>=4.4,<9",
            "django-cors-headers>=4.3,<5",
            # The docs build (tests/test_docs_build.py).
            "sphinx>=7.2,<10",
        ],
        "example": ["redis>=5.0.1"],
        # aiodjango.broadcast's Redis backend (several workers or machines).
        "redis": ["redis>=5.0.1"],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: AsyncIO",
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: aiohttp",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: BSD License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
)
