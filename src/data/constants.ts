// Per-dataset constants: class names and per-channel normalisation statistics.

export const DATASET_NAMES = ['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'imagefolder'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export const NORMALIZATION: Readonly<Record<'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'imagenet', Normalization>> = {
  'fashion-mnist': { mean: [0.2860], std: [0.3530] },
  mnist: { mean: [0.1307], std: [0.3081] },
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] },
  cifar100: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] },
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};

/** CIFAR-10's label order: label i is CIFAR10_CLASSES[i]. */
export const CIFAR10_CLASSES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];

export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export const MNIST_CLASSES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
