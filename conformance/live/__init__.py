"""Everything that talks to a cluster: the ``ClusterOps`` seam (``ops``) and its one client module
(``kube``), sessions, deploy manifests, probing, CNI detection (``cni``), ``doctor``'s checks and
the runner."""
