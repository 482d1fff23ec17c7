import { reviewAdmission } from '../src/admission/review.js';
import { defaultPolicy } from '../src/config/load.js';
import { reviewText } from './pods.js';
const policy = defaultPolicy();
const review = JSON.parse(reviewText(0));
const start = Date.now();
let n = 0;
while (Date.now() - start < 8000) {
  await reviewAdmission(review, { policy });
  n++;
}
console.log('per review us', 8000000 / n);
