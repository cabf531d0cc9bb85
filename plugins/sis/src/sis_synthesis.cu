// Memory-bank update kernels; the algorithm is specified in toolkit/mixqsam2/memory/synthesis.py
// and the C ABI in include/sis_synthesis.h. Four kernels, stream-ordered, no host sync, each
// batched over the N tracked objects (grid y, or grid x for the one-thread select):
//   1. gram:   raw dot products of the pairs of rows (K bank slots + the new memory) the rule
//              compares, float32 (fifo compares none: not launched)
//   2. select: one thread per object; free slot -> plan "write only"; else the rule's selection:
//              the dropped slot, or the merged slots + weights, merged scalar fields, freed slots;
//              and the target slot of the new memory
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
constexpr int kMaxCopyBlocks = 1024;
static_assert(sizeof(int) == sizeof(float), "the workspace packs ints and floats in 4-byte words");

// Per-object workspace, in 4-byte words: float gram[(K+1)^2] | float weights[K] | int plan[2 + K]
// plan[0] = number of merged slots (0: no merge), plan[1] = slot for the new memory,
// plan[2 + i] = i-th selected slot, oldest first
struct Workspace {
    float* gram;
    float* weights;
    int* plan;
};

__host__ __device__ inline size_t workspace_words(int capacity) {
    const size_t n = static_cast<size_t>(capacity) + 1;
    return n * n + capacity + (capacity + 2);
}

__device__ inline Workspace carve(void* base, int capacity, int object) {
    float* gram = static_cast<float*>(base) + object * workspace_words(capacity);
    float* weights = gram + (capacity + 1) * (capacity + 1);
    return {gram, weights, reinterpret_cast<int*>(weights + capacity)};
}

// The banks of all objects (device pointers, layouts as in the header) and their sizes.
template <typename T>
struct Banks {
    T* features;
    T* pointers;
    float* positions;
    float* scores;
    float* counts;
    int32_t* valid;
    const T* new_features;
    const T* new_pointer;
    const float* new_position;
    const float* new_score;
    int capacity;
    int feature_dim;
    int pointer_dim;
};

__device__ inline float to_float(float x) { return x; }
__device__ inline float to_float(__half x) { return __half2float(x); }
template <typename T> __device__ inline T from_float(float x);
template <> __device__ inline float from_float<float>(float x) { return x; }
template <> __device__ inline __half from_float<__half>(float x) { return __float2half_rn(x); }

__device__ bool bank_has_free_slot(const int32_t* valid, int capacity) {
    for (int s = 0; s < capacity; ++s)
        if (!valid[s]) return true;
    return false;
}

// Rules that only compare memories with the newest need the norms (diagonal) and the newest's column.
__host__ __device__ inline bool compares_to_newest_only(int kind) {
    return kind == SIS_TOPK_TO_NEWEST || kind == SIS_DROP_MOST_SIMILAR;
}

int gram_pairs(int kind, int capacity) {
    const int n = capacity + 1;
    if (kind == SIS_DROP_OLDEST) return 0;
    return compares_to_newest_only(kind) ? 2 * capacity + 1 : n * (n + 1) / 2;
}

// Pair index -> rows (a <= b): to-newest rules enumerate (0,0)..(K,K) then (0,K)..(K-1,K);
// closest-pair enumerates the whole upper triangle row by row.
__device__ inline void unrank_pair(int pair, int kind, int capacity, int* a, int* b) {
    const int n = capacity + 1;
    if (compares_to_newest_only(kind)) {
        *a = pair < n ? pair : pair - n;
        *b = pair < n ? pair : capacity;
        return;
    }
    int i = 0;
    while (pair >= n - i) pair -= n - i++;
    *a = i;
    *b = i + pair;
}

template <typename T>
__device__ inline const T* row(const Banks<T>& banks, int object, int index) {
    const size_t dim = banks.feature_dim;
    if (index < banks.capacity) return banks.features + (static_cast<size_t>(object) * banks.capacity + index) * dim;
    return banks.new_features + object * dim;
}

// Grid (pairs, objects); each block reduces one dot product.
template <typename T>
__global__ void gram_kernel(Banks<T> banks, int kind, void* workspace) {
    const int object = blockIdx.y;
    if (bank_has_free_slot(banks.valid + object * banks.capacity, banks.capacity)) return;  // no merge, no drop
    int a, b;
    unrank_pair(blockIdx.x, kind, banks.capacity, &a, &b);
    const T* x = row(banks, object, a);
    const T* y = row(banks, object, b);
    float acc = 0.f;
    for (int d = threadIdx.x; d < banks.feature_dim; d += blockDim.x) acc += to_float(x[d]) * to_float(y[d]);
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    __shared__ float warp_sums[kThreads / 32];
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.f;
        for (int w = 0; w < (blockDim.x + 31) / 32; ++w) total += warp_sums[w];
        const int n = banks.capacity + 1;
        float* gram = carve(workspace, banks.capacity, object).gram;
        gram[a * n + b] = total;
        gram[b * n + a] = total;
    }
}

__host__ __device__ inline float cosine(const float* gram, int n, int a, int b) {
    const float na = fmaxf(sqrtf(gram[a * n + a]), kNormEps);
    const float nb = fmaxf(sqrtf(gram[b * n + b]), kNormEps);
    return gram[a * n + b] / (na * nb);
}

// The candidate (index in age order) a dropping rule frees: the oldest, or the one most similar
// to the newest (strict max: ties keep the older).
__host__ __device__ inline int select_drop(const float* gram, const int* order, int capacity, sis_rule rule) {
    if (rule.kind == SIS_DROP_OLDEST) return 0;
    const int n = capacity + 1;
    int best = 0;
    for (int i = 1; i < capacity; ++i)
        if (cosine(gram, n, order[i], capacity) > cosine(gram, n, order[best], capacity)) best = i;
    return best;
}

// Merge selection over candidates in age order (position, then slot); fills chosen[] (age order)
// and weights[]; returns how many were chosen.
__host__ __device__ inline int select_merge(const float* gram, const int* order, const float* scores,
                                            const float* counts, int capacity, sis_rule rule, int* chosen,
                                            float* weights) {
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

__host__ __device__ inline int first_free_slot(const int32_t* valid, int capacity) {
    for (int s = 0; s < capacity; ++s)
        if (!valid[s]) return s;
    return -1;
}

// Merges the selected candidates' scalar fields into the oldest selected slot and frees the others;
// records the selected slots and how many in plan[2..] and plan[0].
__host__ __device__ inline void merge_scalars(const float* gram, const int* order, float* positions, float* scores,
                                              float* counts, int32_t* valid, int capacity, sis_rule rule,
                                              float* weights, int* plan) {
    int chosen[SIS_MAX_CAPACITY];
    const int count = select_merge(gram, order, scores, counts, capacity, rule, chosen, weights);
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
    plan[0] = count;
}

// The scalar part of the update of one bank (host-callable so that it can be tested without a GPU):
// the rule's drop or merge, and the slot of the new memory (plan[1]).
__host__ __device__ inline void plan_update(const float* gram, float* positions, float* scores, float* counts,
                                            int32_t* valid, int capacity, float new_position, float new_score,
                                            sis_rule rule, float* weights, int* plan) {
    plan[0] = 0;
    int target = first_free_slot(valid, capacity);
    if (target < 0) {
        int order[SIS_MAX_CAPACITY];
        for (int s = 0; s < capacity; ++s) {  // insertion sort by (position, slot)
            int i = s;
            while (i > 0 && positions[order[i - 1]] > positions[s]) order[i] = order[i - 1], --i;
            order[i] = s;
        }
        if (rule.kind == SIS_DROP_OLDEST || rule.kind == SIS_DROP_MOST_SIMILAR) {
            target = order[select_drop(gram, order, capacity, rule)];
        } else {
            merge_scalars(gram, order, positions, scores, counts, valid, capacity, rule, weights, plan);
            target = first_free_slot(valid, capacity);
        }
    }
    plan[1] = target;
    positions[target] = new_position, scores[target] = new_score, counts[target] = 1.f, valid[target] = 1;
}

template <typename T>
__global__ void select_kernel(Banks<T> banks, sis_rule rule, void* workspace) {
    const int object = blockIdx.x, k = banks.capacity;
    const Workspace ws = carve(workspace, k, object);
    plan_update(ws.gram, banks.positions + object * k, banks.scores + object * k, banks.counts + object * k,
                banks.valid + object * k, k, banks.new_position[object], banks.new_score[object], rule, ws.weights,
                ws.plan);
}

// Element e of the concatenated [features | pointer] row `slot` of `object`.
template <typename T>
__device__ inline T* bank_element(const Banks<T>& banks, int object, int slot, int e) {
    const size_t row_index = static_cast<size_t>(object) * banks.capacity + slot;
    if (e < banks.feature_dim) return banks.features + row_index * banks.feature_dim + e;
    return banks.pointers + row_index * banks.pointer_dim + (e - banks.feature_dim);
}

// Grid (blocks, objects).
template <typename T>
__global__ void merge_kernel(Banks<T> banks, void* workspace) {
    const int object = blockIdx.y;
    const Workspace ws = carve(workspace, banks.capacity, object);
    const int count = ws.plan[0];
    if (count == 0) return;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < banks.feature_dim + banks.pointer_dim;
         e += gridDim.x * blockDim.x) {
        float acc = 0.f;
        for (int c = 0; c < count; ++c) acc += ws.weights[c] * to_float(*bank_element(banks, object, ws.plan[2 + c], e));
        *bank_element(banks, object, ws.plan[2], e) = from_float<T>(acc);
    }
}

// Grid (blocks, objects).
template <typename T>
__global__ void write_kernel(Banks<T> banks, void* workspace) {
    const int object = blockIdx.y;
    const int target = carve(workspace, banks.capacity, object).plan[1];
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < banks.feature_dim + banks.pointer_dim;
         e += gridDim.x * blockDim.x) {
        *bank_element(banks, object, target, e) =
            e < banks.feature_dim ? banks.new_features[static_cast<size_t>(object) * banks.feature_dim + e]
                                  : banks.new_pointer[static_cast<size_t>(object) * banks.pointer_dim +
                                                      (e - banks.feature_dim)];
    }
}

template <typename T>
cudaError_t enqueue(const Banks<T>& banks, int num_objects, sis_rule rule, void* workspace, cudaStream_t stream) {
    const int elements = banks.feature_dim + banks.pointer_dim;
    const dim3 copy_grid(min((elements + kThreads - 1) / kThreads, kMaxCopyBlocks), num_objects);
    const int pairs = gram_pairs(rule.kind, banks.capacity);
    if (pairs > 0) gram_kernel<T><<<dim3(pairs, num_objects), kThreads, 0, stream>>>(banks, rule.kind, workspace);
    select_kernel<T><<<num_objects, 1, 0, stream>>>(banks, rule, workspace);
    merge_kernel<T><<<copy_grid, kThreads, 0, stream>>>(banks, workspace);
    write_kernel<T><<<copy_grid, kThreads, 0, stream>>>(banks, workspace);
    return cudaGetLastError();
}

template <typename T>
int enqueue_typed(int num_objects, void* features, void* pointers, float* positions, float* scores, float* counts,
                  int32_t* valid, int capacity, int feature_dim, int pointer_dim, const void* new_features,
                  const void* new_pointer, const float* new_position, const float* new_score, sis_rule rule,
                  void* workspace, cudaStream_t stream) {
    const Banks<T> banks{static_cast<T*>(features), static_cast<T*>(pointers), positions, scores, counts, valid,
                         static_cast<const T*>(new_features), static_cast<const T*>(new_pointer), new_position,
                         new_score, capacity, feature_dim, pointer_dim};
    return static_cast<int>(enqueue(banks, num_objects, rule, workspace, stream));
}

}  // namespace

extern "C" size_t sis_workspace_bytes(int capacity, int num_objects) {
    return static_cast<size_t>(num_objects) * workspace_words(capacity) * sizeof(float);
}

extern "C" int sis_update(sis_dtype dtype, int num_objects, void* features, void* pointers, float* positions,
                          float* scores, float* counts, int32_t* valid, int capacity, int feature_dim, int pointer_dim,
                          const void* new_features, const void* new_pointer, const float* new_position,
                          const float* new_score, sis_rule rule, void* workspace, void* stream) {
    if (num_objects < 1 || capacity < 2 || capacity > SIS_MAX_CAPACITY || feature_dim <= 0 || pointer_dim < 0 ||
        !sis_rule_is_valid(rule))
        return static_cast<int>(cudaErrorInvalidValue);
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == SIS_FLOAT32)
        return enqueue_typed<float>(num_objects, features, pointers, positions, scores, counts, valid, capacity,
                                    feature_dim, pointer_dim, new_features, new_pointer, new_position, new_score,
                                    rule, workspace, s);
    if (dtype == SIS_FLOAT16)
        return enqueue_typed<__half>(num_objects, features, pointers, positions, scores, counts, valid, capacity,
                                     feature_dim, pointer_dim, new_features, new_pointer, new_position, new_score,
                                     rule, workspace, s);
    return static_cast<int>(cudaErrorInvalidValue);
}
