//! Layers as read-only directories, overlay mounts over them and layer tars.
