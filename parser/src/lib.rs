//! Dockerfile front end: pest grammar, typed AST with spans, shell-word expansion.
