"""Datasets and images: listing and seeded splits, decoding, the decode cache, users' image files,
import and download, tf.data pipelines, augmentations and corruptions. Imports base and config."""
