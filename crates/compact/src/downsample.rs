//! Downsampling (placeholder; see the downsample worktree).
