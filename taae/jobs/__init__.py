"""Jobs over whole corpora: Lightning ``predict`` tokenization into token shards, and their flat export for LMs."""
