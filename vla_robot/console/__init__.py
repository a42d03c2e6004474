"""The operator's recording console in a browser: live cameras and joints, episode controls,
the store's episodes with playback, and an always-visible e-stop (docs/collect.md)."""
