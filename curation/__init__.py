"""Curation: turn web crawls (WARC) plus DataComp-style metadata into timestamped, filtered pools."""
