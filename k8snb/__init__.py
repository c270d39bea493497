"""k8snb: helpers for the hands-on Kubernetes networking course."""
