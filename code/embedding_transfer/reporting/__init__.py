"""Reading what runs recorded (args.json, metrics.jsonl) and showing it: results tables beside the
paper's numbers, figures, retrieval grids. Training writes the records and never imports the reader
(runs.py); it draws a run's own curves with curves.py, which works from records in memory."""
