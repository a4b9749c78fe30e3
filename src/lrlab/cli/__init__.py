"""The command-line layer: Hydra entry-point glue (`jobs`: run a task as a Hydra job, sweep
reports, exit statuses; `errors`: one-line errors for bad input, Hydra's own included) and the
console scripts (`preview`: lrlab-schedule)."""
