//! `ContainerManager` over the Rancher 1.x `v2-beta` API (being built; see the Rancher issue).
