"""Conveyor for Flask: configured from ``app.config``, tasks run inside the app context,
the app-factory pattern works, and ``flask conveyor worker|beat|status`` runs on Flask's
own CLI. See docs/flask.md.

    conveyor = Conveyor()                 # module level, before any app exists

    @conveyor.task
    def send_welcome(user_id: int) -> str:
        return current_app.config["MAIL_SENDER"]

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["CONVEYOR_BROKER_URL"] = "sqlite:///conveyor.db"
        conveyor.init_app(app)            # app.extensions["conveyor"] is its App
        return app
"""

from conveyor.contrib.flask.extension import CONFIG_KEYS, Conveyor
from conveyor.contrib.flask.tasks import AsyncFlaskTask, FlaskTask

__all__ = ["CONFIG_KEYS", "AsyncFlaskTask", "Conveyor", "FlaskTask"]
