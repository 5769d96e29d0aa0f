//! Build graph, Dockerfile lowering, cache keys, parallel scheduler, exporters.
