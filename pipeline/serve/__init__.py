"""`serve`: MLflow's own scoring server for a model URI, behind request checks that keep the
model's contract under hostile input, with worker processes that take traffic only once loaded.

The protocol is MLflow's (`mlflow.pyfunc.scoring_server`): /ping, /health and /invocations
with dataframe_split, dataframe_records, inputs or instances; /version names the model served
(so does the X-Model-Version header of every answer). In front of it an
ASGI middleware (`Guard`) answers what MLflow's app cannot: a Host allow-list (421), a missing or
unsupported Content-Type (415), a body over the size limit, counted while it is read (413), a
body that is not UTF-8 JSON or nests too deeply (400), and CSV, which it parses into a
`dataframe_split` of the `text` column. Every error body is `{"error_code", "message"}` with a
message that names the problem and the rows, never a stack trace, a path or the input sent.

Start-up: the parent binds the listening socket first (early connections wait in its backlog),
downloads the model once, then starts the workers (spawned, not forked: TensorFlow is not
fork-safe). Each worker loads the model, scores the model's input example, and only then accepts
connections; /ping and /health answer 503 until every worker has. Nothing kills a worker for
being slow to load; the parent restarts a worker that dies after it was ready, stops everything
if one dies before, and stops all workers on SIGTERM or SIGINT.

A `models:/<name>@<alias>` is followed: when the alias moves, the workers load its new version
in the background and switch to it together, between requests.

The package: `checks` (request checks, pure functions), `guard` (the ASGI middleware and the
model wrapper), `workers` (a worker process, the socket, the local model), `supervisor` (the
parent process), `served` (what is served), `follow` (following an alias), `copies` (the
downloaded models) and `command` (the click command). It is imported by the CLI before the socket
is bound, so MLflow, uvicorn and the model's libraries are imported inside functions, in the
process that needs them.
"""

from pipeline.serve.command import command

__all__ = ["command"]
