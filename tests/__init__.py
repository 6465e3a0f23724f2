"""rerank-kit's tests: `unit/` mirrors the packages, `e2e/` drives real processes, `repo/` checks the repository
as a whole, `support/` is what they share (docs/ARCHITECTURE.md, "Tests")."""
