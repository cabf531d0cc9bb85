// SIS memory synthesis kernels; the algorithm is specified in toolkit/mixqsam2/memory/synthesis.py
// and the C ABI in include/sis_synthesis.h. Four kernels, stream-ordered, no host sync:
//   1. gram:   raw dot products of every pair of rows (K bank slots + the new memory), float32
//   2. select: one thread; free slot -> plan "write only"; else the rule's selection + weights,
//              merged scalar fields, freed slots, the target slot of the new memory
//   3. merge:  features/pointers of the oldest selected slot = weighted sum of the selected slots
//   4. write:  the new memory's features/pointer into the target slot
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "sis_synthesis.h"

namespace {

constexpr float kNormEps = 1e-12f;
constexpr float kConfidenceFloor = 1e-3f;
constexpr int kThreads = 256;

// workspace layout: float gram[(K+1)^2] | float weights[K] | int plan[2 + K]
// plan[0] = number of merged slots (0: no merge), plan[1] = slot for the new memory,
// plan[2 + i] = i-th selected slot, oldest first
struct Workspace {
    float* gram;
    float* weights;
    int* plan;
};

Workspace carve(void* base, int capacity) {
    const int n = capacity + 1;
    float* gram = static_cast<float*>(base);
    float* weights = gram + n * n;
    return {gram, weights, reinterpret_cast<int*>(weights + capacity)};
}

__device__ inline float to_float(float x) { return x; }
__device__ inline float to_float(__half x) { return __half2float(x); }
template <typename T> __device__ inline T from_float(float x);
template <> __device__ inline float from_float<float>(float x) { return x; }
template <> __device__ inline __half from_float<__half>(float x) { return __float2half_rn(x); }

__device__ bool bank_has_free_slot(const uint8_t* valid, int capacity) {
    for (int s = 0; s < capacity; ++s)
        if (!valid[s]) return true;
    return false;
}

template <typename T>
__device__ inline const T* row(const T* features, const T* new_features, int index, int capacity, int dim) {
    return index < capacity ? features + static_cast<size_t>(index) * dim : new_features;
}

// One block per pair (a <= b) of the n = K + 1 rows; the block reduces the dot product.
template <typename T>
__global__ void gram_kernel(const T* features, const T* new_features, const uint8_t* valid, int capacity,
                            int dim, float* gram) {
    if (bank_has_free_slot(valid, capacity)) return;  // nothing to merge this frame
    const int n = capacity + 1;
    int pair = blockIdx.x, a = 0;
    while (pair >= n - a) pair -= n - a++;  // unrank the upper-triangular pair index
    const int b = a + pair;
    const T* x = row(features, new_features, a, capacity, dim);
    const T* y = row(features, new_features, b, capacity, dim);
    float acc = 0.f;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) acc += to_float(x[d]) * to_float(y[d]);
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    __shared__ float warp_sums[kThreads / 32];
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.f;
        for (int w = 0; w < (blockDim.x + 31) / 32; ++w) total += warp_sums[w];
        gram[a * n + b] = total;
        gram[b * n + a] = total;
    }
}

__host__ __device__ inline float cosine(const float* gram, int n, int a, int b) {
    const float na = fmaxf(sqrtf(gram[a * n + a]), kNormEps);
    const float nb = fmaxf(sqrtf(gram[b * n + b]), kNormEps);
    return gram[a * n + b] / (na * nb);
}

// Selection over candidates in age order (position, then slot); fills chosen[] (age order)
// and weights[]; returns how many were chosen.
__host__ __device__ inline int select_candidates(const float* gram, const int* order, const float* scores, const float* counts,
                                 int capacity, sis_rule rule, int* chosen, float* weights) {
    const int n = capacity + 1, ref = capacity;
    bool taken[SIS_MAX_CAPACITY] = {false};
    int count = 0;
    if (rule.kind == SIS_TOPK_TO_NEWEST) {
        const int k = rule.top_k < capacity ? rule.top_k : capacity;
        for (int r = 0; r < k; ++r) {  // repeated strict max: ties keep the older candidate
            int best = -1;
            for (int i = 0; i < capacity; ++i)
                if (!taken[i] && (best < 0 || cosine(gram, n, order[i], ref) > cosine(gram, n, order[best], ref)))
                    best = i;
            taken[best] = true;
        }
        for (int i = 0; i < capacity; ++i)
            if (taken[i]) chosen[count++] = i;
        float max_logit = -INFINITY;
        for (int c = 0; c < count; ++c)
            max_logit = fmaxf(max_logit, cosine(gram, n, order[chosen[c]], ref) / rule.temperature);
        for (int c = 0; c < count; ++c)
            weights[c] = expf(cosine(gram, n, order[chosen[c]], ref) / rule.temperature - max_logit);
    } else {
        int bi = 0, bj = 1;
        for (int i = 0; i < capacity; ++i)  // lexicographic scan, strict max: the oldest pair wins ties
            for (int j = i + 1; j < capacity; ++j)
                if (cosine(gram, n, order[i], order[j]) > cosine(gram, n, order[bi], order[bj])) bi = i, bj = j;
        chosen[count++] = bi;
        chosen[count++] = bj;
        for (int c = 0; c < count; ++c) {
            const int slot = order[chosen[c]];
            weights[c] = counts[slot] * (1.f / (1.f + expf(-scores[slot])) + kConfidenceFloor);
        }
    }
    float total = 0.f;
    for (int c = 0; c < count; ++c) total += weights[c];
    for (int c = 0; c < count; ++c) weights[c] /= total;
    return count;
}

// The scalar part of the update (host-callable so that it can be tested without a GPU):
// selection, weights, merged scalars, freed slots, and the slot of the new memory.
__host__ __device__ inline void plan_update(const float* gram, float* positions, float* scores, float* counts,
                                            uint8_t* valid, int capacity, float new_position, float new_score,
                                            sis_rule rule, float* weights, int* plan) {
    plan[0] = 0;
    int target = -1;
    for (int s = 0; s < capacity && target < 0; ++s)
        if (!valid[s]) target = s;
    if (target < 0) {
        int order[SIS_MAX_CAPACITY];
        for (int s = 0; s < capacity; ++s) {  // insertion sort by (position, slot)
            int i = s;
            while (i > 0 && positions[order[i - 1]] > positions[s]) order[i] = order[i - 1], --i;
            order[i] = s;
        }
        int chosen[SIS_MAX_CAPACITY];
        const int count = select_candidates(gram, order, scores, counts, capacity, rule, chosen, weights);
        float position = 0.f, score = 0.f, frames = 0.f;
        for (int c = 0; c < count; ++c) {
            const int slot = order[chosen[c]];
            position += weights[c] * positions[slot];
            score += weights[c] * scores[slot];
            frames += counts[slot];
            plan[2 + c] = slot;
        }
        const int keep = plan[2];
        positions[keep] = position, scores[keep] = score, counts[keep] = frames;
        for (int c = 1; c < count; ++c) valid[plan[2 + c]] = 0;
        for (int s = 0; s < capacity && target < 0; ++s)
            if (!valid[s]) target = s;
        plan[0] = count;
    }
    plan[1] = target;
    positions[target] = new_position, scores[target] = new_score, counts[target] = 1.f, valid[target] = 1;
}

__global__ void select_kernel(const float* gram, float* positions, float* scores, float* counts, uint8_t* valid,
                              int capacity, const float* new_position, const float* new_score, sis_rule rule,
                              float* weights, int* plan) {
    plan_update(gram, positions, scores, counts, valid, capacity, *new_position, *new_score, rule, weights, plan);
}

template <typename T>
__global__ void merge_kernel(T* features, T* pointers, int feature_dim, int pointer_dim, const float* weights,
                             const int* plan) {
    const int count = plan[0];
    if (count == 0) return;
    for (int d = blockIdx.x * blockDim.x + threadIdx.x; d < feature_dim + pointer_dim; d += gridDim.x * blockDim.x) {
        T* base = d < feature_dim ? features : pointers;
        const int dim = d < feature_dim ? feature_dim : pointer_dim;
        const int e = d < feature_dim ? d : d - feature_dim;
        float acc = 0.f;
        for (int c = 0; c < count; ++c) acc += weights[c] * to_float(base[static_cast<size_t>(plan[2 + c]) * dim + e]);
        base[static_cast<size_t>(plan[2]) * dim + e] = from_float<T>(acc);
    }
}

template <typename T>
__global__ void write_kernel(T* features, T* pointers, const T* new_features, const T* new_pointer, int feature_dim,
                             int pointer_dim, const int* plan) {
    const size_t target = static_cast<size_t>(plan[1]);
    for (int d = blockIdx.x * blockDim.x + threadIdx.x; d < feature_dim + pointer_dim; d += gridDim.x * blockDim.x) {
        if (d < feature_dim)
            features[target * feature_dim + d] = new_features[d];
        else
            pointers[target * pointer_dim + (d - feature_dim)] = new_pointer[d - feature_dim];
    }
}

template <typename T>
cudaError_t enqueue(T* features, T* pointers, float* positions, float* scores, float* counts, uint8_t* valid,
                    int capacity, int feature_dim, int pointer_dim, const T* new_features, const T* new_pointer,
                    const float* new_position, const float* new_score, sis_rule rule, void* workspace,
                    cudaStream_t stream) {
    const Workspace ws = carve(workspace, capacity);
    const int n = capacity + 1;
    const int elements = feature_dim + pointer_dim;
    const int blocks = min((elements + kThreads - 1) / kThreads, 1024);
    gram_kernel<T><<<n * (n + 1) / 2, kThreads, 0, stream>>>(features, new_features, valid, capacity, feature_dim,
                                                             ws.gram);
    select_kernel<<<1, 1, 0, stream>>>(ws.gram, positions, scores, counts, valid, capacity, new_position, new_score,
                                       rule, ws.weights, ws.plan);
    merge_kernel<T><<<blocks, kThreads, 0, stream>>>(features, pointers, feature_dim, pointer_dim, ws.weights,
                                                     ws.plan);
    write_kernel<T><<<blocks, kThreads, 0, stream>>>(features, pointers, new_features, new_pointer, feature_dim,
                                                     pointer_dim, ws.plan);
    return cudaGetLastError();
}

}  // namespace

extern "C" size_t sis_workspace_bytes(int capacity) {
    const size_t n = static_cast<size_t>(capacity) + 1;
    return n * n * sizeof(float) + capacity * sizeof(float) + (capacity + 2) * sizeof(int);
}

extern "C" int sis_update(sis_dtype dtype, void* features, void* pointers, float* positions, float* scores,
                          float* counts, uint8_t* valid, int capacity, int feature_dim, int pointer_dim,
                          const void* new_features, const void* new_pointer, const float* new_position,
                          const float* new_score, sis_rule rule, void* workspace, void* stream) {
    const bool known_rule = rule.kind == SIS_CLOSEST_PAIR || (rule.kind == SIS_TOPK_TO_NEWEST && rule.top_k >= 1 &&
                                                              rule.temperature > 0.f);
    if (capacity < 2 || capacity > SIS_MAX_CAPACITY || feature_dim <= 0 || pointer_dim < 0 || !known_rule)
        return static_cast<int>(cudaErrorInvalidValue);
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == SIS_FLOAT32)
        return enqueue(static_cast<float*>(features), static_cast<float*>(pointers), positions, scores, counts, valid,
                       capacity, feature_dim, pointer_dim, static_cast<const float*>(new_features),
                       static_cast<const float*>(new_pointer), new_position, new_score, rule, workspace, s);
    if (dtype == SIS_FLOAT16)
        return enqueue(static_cast<__half*>(features), static_cast<__half*>(pointers), positions, scores, counts,
                       valid, capacity, feature_dim, pointer_dim, static_cast<const __half*>(new_features),
                       static_cast<const __half*>(new_pointer), new_position, new_score, rule, workspace, s);
    return static_cast<int>(cudaErrorInvalidValue);
}
