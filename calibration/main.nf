#!/usr/bin/env nextflow
/*
 * Calibration: the same small pipeline with S3 staging (-profile s3) and through Fusion
 * (-profile fusion), to compare with `wavectl calibrate compare` (see README.md).
 *
 * Shaped like the work Fusion helps: one large indexed input (a synthetic FASTA, made by the
 * pipeline into your bucket) of which each task reads only a few regions, many per-chunk
 * tasks with outputs, and a merge step. The scripts are in bin/ (Python 3, standard library).
 */
nextflow.enable.dsl = 2

params.bucket = null             // s3://YOUR-BUCKET: input, work directories and results
params.regions = 256             // regions in the input
params.region_kib = 4096         // KiB per region: 256 x 4 MiB = 1 GiB of input
params.chunks = 16               // REGION_STATS tasks
params.regions_per_chunk = 2     // regions each of them reads

process MAKE_INPUT {
    publishDir "${params.bucket}/calibration/input/${workflow.profile}", mode: 'copy'

    output:
    tuple path('genome.fa'), path('genome.fa.idx')

    script:
    """
    make_input.py --regions ${params.regions} --region-kib ${params.region_kib} genome.fa genome.fa.idx
    """
}

process REGION_STATS {
    tag "${chunk}"

    input:
    tuple path(fasta), path(index)
    tuple val(chunk), val(regions)

    output:
    path "stats_${chunk}.tsv"

    script:
    """
    region_stats.py --regions ${regions.join(',')} --out stats_${chunk}.tsv ${fasta} ${index}
    """
}

process MERGE {
    publishDir "${params.bucket}/calibration/results/${workflow.profile}", mode: 'copy'

    input:
    path stats

    output:
    path 'summary.tsv'

    script:
    """
    merge_stats.py --out summary.tsv ${stats}
    """
}

workflow {
    if (!params.bucket) {
        error "give --bucket s3://YOUR-BUCKET (the input, work directories and results go there)"
    }
    // Regions spread over the whole file: chunk c reads c, c + chunks, c + 2 * chunks, ...
    chunks = Channel.of(0..<params.chunks).map { chunk ->
        tuple(chunk, (0..<params.regions_per_chunk).collect { step ->
            "chr${(chunk + step * params.chunks) % params.regions}"
        })
    }
    MERGE(REGION_STATS(MAKE_INPUT(), chunks).collect())
}
