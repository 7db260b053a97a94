"""Names and one-line descriptions of the built-in datasets, without their loaders: what
``latentforge datasets`` lists, importable without NumPy or pandas."""

DESCRIPTIONS: dict[str, str] = {
    "digits": "8x8 handwritten digits, 1,797 images, 10 classes (scikit-learn; the default)",
    "breast_cancer": "569 tumours, 30 numeric features, label 0 = malignant, 1 = benign (scikit-learn)",
    "wine": "178 wines, 13 numeric features, 3 cultivars (scikit-learn)",
    "mnist5k": "5,000 28x28 MNIST digits (optional extra: pip install 'latentforge[mnist]')",
    "blobs": "synthetic: 1,500 points, 10 features, 5 Gaussian blobs (label = blob)",
    "swissroll": "synthetic: 2,000-point 3-D swiss roll, factors t and height",
    "shapes": "synthetic: 5,000 32x32 sprites, factors shape, scale, rotation, x, y",
}
