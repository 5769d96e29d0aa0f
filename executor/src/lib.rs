//! Sandbox (namespaces, overlay rootfs, cgroups, networking) and container lifecycle.
