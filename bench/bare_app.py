"""The floor: a bare Flask app that parses the same body and returns one fixed card.

Served by ``bench/run.py`` under the same gunicorn settings as ``cds-service serve``.
"""

import json

from flask import Flask
from flask import Response
from flask import request

app = Flask(__name__)
CARD = json.dumps({"cards": [{
    "uuid": "7d9f9a3e-7d6e-4d8e-9a53-1f3c1f1b2a10", "summary": "Milnacipran: check renal function",
    "indicator": "warning", "source": {"label": "Milnacipran order check",
                                       "topic": {"code": "renal-function", "display": "Renal function"}},
    "detail": "A fixed card.", "links": []}]})


@app.post("/cds-services/<service_id>")
def service(service_id):
    body = json.loads(request.get_data())
    if not isinstance(body, dict) or "context" not in body:
        return Response('{"error": "bad request"}', status=400, content_type="application/json")
    return Response(CARD, content_type="application/json")


@app.get("/readyz")
def readyz():
    return {"status": "ready"}
