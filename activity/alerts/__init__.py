"""Detection on ingested CloudTrail activity: rules evaluated on each log file's new events, alerts stored, shown
to staff, emailed, and acknowledged."""
