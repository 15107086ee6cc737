"""Reading images: tfds splits, batches as pure functions of the step, on-device augmentation."""
