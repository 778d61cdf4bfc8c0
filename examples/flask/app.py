# The article's hello world: Flask on port 8080, counting visits in PostgreSQL.
import os
import socket

import psycopg
from flask import Flask

app = Flask(__name__)
DATABASE = f"host={os.environ.get('DATABASE_HOST', 'db')} user=postgres dbname=postgres"


@app.after_request
def which_replica(response):
    # Which replica answered: its host name (shoal names each after its container).
    response.headers["X-Replica"] = socket.gethostname()
    return response


@app.route("/")
def hello():
    return "Hello, world!\n"


@app.route("/healthz")
def healthz():
    return "ok\n"


@app.route("/visits")
def visits():
    with psycopg.connect(DATABASE) as db:
        db.execute("CREATE TABLE IF NOT EXISTS visits (n bigint NOT NULL)")
        db.execute("INSERT INTO visits SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM visits)")
        (n,) = db.execute("UPDATE visits SET n = n + 1 RETURNING n").fetchone()
    return f"visits: {n}\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8080)
