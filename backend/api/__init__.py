"""API blueprints, one per resource, all under /api/v1."""

from flask_smorest import Api

from .. import metrics
from . import activities, boards, claims, login, passbook, registry, rules, shop, uploads, users


def register_blueprints(api: Api) -> None:
    for module in (
        login,
        registry,
        rules,
        users,
        claims,
        passbook,
        uploads,
        shop,
        boards,
        activities,
    ):
        api.register_blueprint(module.blp, url_prefix="/api/v1")
    # Pages a printed QR opens (/b/…, /h/…), outside /api/v1 and without login.
    api.register_blueprint(boards.public_blp)
    # The full-screen code of a rotating activity, outside /api/v1: a page for a screen.
    api.register_blueprint(activities.pages_blp)
    # Prometheus scrapes /metrics, outside /api/v1: text, not JSON, and not for the apps.
    metrics.register(api)
