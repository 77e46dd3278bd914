"""API blueprints, one per resource, all under /api/v1."""

from flask_smorest import Api


def register_blueprints(api: Api) -> None:
    from . import activities, auth, boards, claims, points, registry, rules, shop, uploads, users

    for module in (auth, registry, rules, users, claims, points, uploads, shop, boards,
                   activities):
        api.register_blueprint(module.blp, url_prefix="/api/v1")
    # Pages a printed QR opens (/b/…, /h/…), outside /api/v1 and without login.
    api.register_blueprint(boards.public_blp)
    # The full-screen code of a rotating activity, outside /api/v1: a page for a screen.
    api.register_blueprint(activities.pages_blp)
    # Prometheus scrapes /metrics, outside /api/v1: text, not JSON, and not for the apps.
    from .. import metrics

    metrics.register(api)
