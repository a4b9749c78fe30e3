"""Tasks: what the entry points run, composed from the layers below (data, models, optim,
lr_finder, tracking, engine, callbacks). `train`, `find_lr`, `schedule_trace`."""
