"""API blueprints, one per resource, all under /api/v1."""

from flask_smorest import Api


def register_blueprints(api: Api) -> None:
    from . import auth, claims, points, registry, rules, uploads, users

    for module in (auth, registry, rules, users, claims, points, uploads):
        api.register_blueprint(module.blp, url_prefix="/api/v1")
