"""Benchmarks: per-year evaluation splits (TiC-DataComp-Retrieval, TiC-DataComp-Net), leakage-free
training pools, and the webdataset shards that training streams."""
