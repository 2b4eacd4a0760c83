"""The Kubeflow Pipelines v2 backend, built on the kfp SDK's own compiler."""
