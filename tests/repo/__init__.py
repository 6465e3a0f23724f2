"""Checks of the repository as a whole: the import rules between packages, docs and scripts in step with the
code, the deployment files (Helm chart, manifests, Dockerfile) and their defaults."""
