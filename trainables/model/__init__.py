"""The decoupled model (`decoupled`), its config and the one split/ratio check (`config`), passage-state storage
(`quantization`), and where a model comes from: local directories, bucket copies, hub snapshots (`source`, `hub`),
its files checked before loading (`checkpoint_files`), the device check (`devices`)."""
