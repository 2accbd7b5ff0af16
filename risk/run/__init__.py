"""The run folder: where every file of a run lives, how its tables are opened, its manifest and history."""
