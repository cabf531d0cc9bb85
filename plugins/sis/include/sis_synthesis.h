/*
 * Memory-bank updates on the GPU: the update of mixqsam2.memory.synthesis (fifo, prune, SIS
 * synthesis), in place, batched over the tracked objects.
 *
 * The banks of N tracked objects live on the device as K slots each (row-major, object first):
 *   features  [N, K, D]  float32 or float16 (D = HW * C memory tokens x channels, flattened)
 *   pointers  [N, K, P]  same dtype (object pointers)
 *   positions [N, K] float32, scores [N, K] float32, counts [N, K] float32, valid [N, K] int32 (0/1)
 * and the newest memory of each object as new_features [N, D], new_pointer [N, P],
 * new_position [N], new_score [N] (device pointers too, so that a TensorRT plugin can take them
 * as engine tensors). valid is int32 because TensorRT plugins take no BOOL/UINT8 tensors.
 *
 * sis_update() enqueues the update on `stream` and never synchronizes: a free slot takes the new
 * memory; a full bank is updated exactly as the Python reference specifies (drop the oldest, drop
 * the one most similar to the newest, or synthesize: cosine Gram matrix in float32, selection by
 * rule, weighted merge into the oldest selected slot, the other selected slots freed, the new
 * memory into the first free slot). `workspace` must hold sis_workspace_bytes(K, N) bytes of
 * device memory.
 */
#ifndef MIXQSAM2_SIS_SYNTHESIS_H
#define MIXQSAM2_SIS_SYNTHESIS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define SIS_API __declspec(dllexport)
#else
#define SIS_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SIS_FLOAT32 = 0, SIS_FLOAT16 = 1 } sis_dtype;

/* SIS_TOPK_TO_NEWEST: the paper's SIS (top_k >= 2 most similar to the newest, softmax(sim / temperature));
 * SIS_CLOSEST_PAIR: sis-pair (closest pair, weights counts * (sigmoid(score) + 1e-3));
 * SIS_DROP_OLDEST: fifo (SAM2); SIS_DROP_MOST_SIMILAR: prune (drop the memory most similar to the newest). */
typedef enum {
    SIS_TOPK_TO_NEWEST = 0,
    SIS_CLOSEST_PAIR = 1,
    SIS_DROP_OLDEST = 2,
    SIS_DROP_MOST_SIMILAR = 3
} sis_rule_kind;

typedef struct {
    int kind;          /* sis_rule_kind */
    int top_k;         /* SIS_TOPK_TO_NEWEST only */
    float temperature; /* SIS_TOPK_TO_NEWEST only */
} sis_rule;

#define SIS_MAX_CAPACITY 64

/* Whether the kernels accept `rule`: a known kind and, for SIS_TOPK_TO_NEWEST, top_k >= 2 (a merge
 * of one memory frees no slot) and temperature > 0. */
static inline int sis_rule_is_valid(sis_rule rule) {
    if (rule.kind == SIS_TOPK_TO_NEWEST) return rule.top_k >= 2 && rule.temperature > 0.f;
    return rule.kind == SIS_CLOSEST_PAIR || rule.kind == SIS_DROP_OLDEST || rule.kind == SIS_DROP_MOST_SIMILAR;
}

/* Device workspace bytes sis_update needs for `num_objects` banks of `capacity` slots. */
SIS_API size_t sis_workspace_bytes(int capacity, int num_objects);

/* Returns 0 on success, otherwise a cudaError_t value (cudaErrorInvalidValue = 1 for bad arguments:
 * num_objects < 1, capacity outside [2, SIS_MAX_CAPACITY], non-positive sizes, a rule that
 * sis_rule_is_valid refuses, an unknown dtype). */
SIS_API int sis_update(sis_dtype dtype, int num_objects, void* features, void* pointers, float* positions,
                       float* scores, float* counts, int32_t* valid, int capacity, int feature_dim, int pointer_dim,
                       const void* new_features, const void* new_pointer, const float* new_position,
                       const float* new_score, sis_rule rule, void* workspace, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* MIXQSAM2_SIS_SYNTHESIS_H */
