"""Partner activity from the organisation's CloudTrail trail: ingestion, attribution, storage, retention.

- `models`: ActivityEvent (one narrow row per event, attributed), ActivityAction and ActivityContext (what events
  share, stored once), TrailFile (each log file as delivered: the records), TrailCursor (where ingestion is, per
  prefix), QuarantinedObject (files that could not be read);
- `interning`: the ids of actions and contexts, found or written (outside the batch's transaction) by digest;
- `records`: log file bytes → parsed records (gunzip with a size limit, the documented record format);
- `attribution`: who did it — account → partner, sourceIdentity → Porte user, access key / session name → grant;
- `store`: bulk loading (PostgreSQL binary COPY; a staging table and INSERT ... ON CONFLICT DO NOTHING for events
  seen before) and the log files kept;
- `loading`: a batch of log files into the database, this process preparing the next file while the server inserts
  the current one's events; the alert rules once per batch;
- `trail`: where the log files are (S3 layout of an organisation trail) and the per-prefix cursor arithmetic;
- `ingest`: the incremental, idempotent loop over new objects, with quarantine;
- `converters`: the time part of an event's address (`/activity/<time>/<eventID>/`);
- `notified`: the near-real-time path — which trail files an SQS message (an S3 or CloudTrail notification) names;
- `services`: the actions (ingest by listing or from notifications, purge, retry or resolve a quarantined object);
  `selectors`: keyset pages;
- `simulator`: writes realistic log files into the local emulator's trail bucket (moto emits no CloudTrail).

The views of it:
- `access`: what each person may see (staff all, partner admin their organisation's Porte sessions, partner user
  their own), scoped before any filter; `filters`: the validated filters and the signed keyset cursor;
- `rows`: events with their person and organisation (looked up per page), and the keyset-iterated export rows;
- `views`, `api`, `export`: the pages, `GET /api/v1/activity/`, CSV/JSON exports;
- `timeline`: a grant's lifecycle and its events in time order; `lag`: how far behind ingestion is (the banner).
"""
