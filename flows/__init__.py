"""Prefect flows over the pipelines and training: ingest, synthesize, prompts, curate, export, train, build-and-train,
watch-folder and demo (registry and deployments in :mod:`flows.deployments`, schedules in prefect.yaml)."""
