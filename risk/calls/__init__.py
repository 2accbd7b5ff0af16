"""The phone follow-up loop (外呼): call lists, call results, and what the next run does with them."""
