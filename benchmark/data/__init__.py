"""Collections, BM25 mining, the validation hold-out and the budget, the compact triple store."""
