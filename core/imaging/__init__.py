"""Images: reading any file a user has (EXIF, grayscale, alpha, 16-bit) and the letterbox pre-processing
that training and inference share."""
